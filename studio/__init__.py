"""FlowLoom's studio: the NiceGUI pages, the REST API and the `flowloom` command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flowloom")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
