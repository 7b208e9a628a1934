"""The one exception the data layer raises for bad input (missing folders, unreadable files, bad options).

Every message names the path or value at fault and says how to fix it, so the CLI can show it as is.
"""


from vitkit.errors import VitkitError


class DataError(VitkitError, ValueError):
    """A dataset, folder, file or data option that vitkit cannot use; the message says why and what to do."""
