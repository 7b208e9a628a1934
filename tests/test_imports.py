import subprocess
import sys


def test_models_import_without_lightning_or_albumentations():
    code = (
        "import sys, vitkit, vitkit.models, vitkit.layers, vitkit.weights; "
        "bad = [m for m in ('lightning', 'pytorch_lightning', 'albumentations') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
