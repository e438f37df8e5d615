"""Time the GUI's per-view redraw (numpy frame composition) at 160x192x224: budget < 50 ms.

    python benchmarks/gui_redraw.py
"""
import sys

from fnoreg_gui.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
