"""The studio as `flowloom studio` builds it, for NiceGUI's simulated user (tests/studio_pages.py).

NiceGUI runs this file for each test; `ui.run` returns at once in a simulation.
"""

from engine.settings import get_settings
from studio.app import run_studio

run_studio(get_settings())
