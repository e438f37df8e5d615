"""Time the GUI's redraw at 160x192x224 (budget < 50 ms): the numpy frame composition, the real Qt
path offscreen (setImage + processEvents) per view, and a whole slice change (three views).

    python benchmarks/gui_redraw.py [--shape 160 192 224] [--repeats 5] [--no-qt]
"""
import sys

from fnoreg_gui.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
