"""Make the lab package importable for the lab's own tests."""

import sys
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parents[2] / "lab"
if str(LAB_DIR) not in sys.path:
    sys.path.insert(0, str(LAB_DIR))
