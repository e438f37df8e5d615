"""fnoreg-data: build the offline real-brain set and the bundled demo pairs.

Examples:
  fnoreg-data templates                      # -> ~/.cache/fnoreg/templates (or $FNOREG_DATA/templates)
  fnoreg-data templates --out data/templates --force
  fnoreg-data demo --templates data/templates --out assets/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fnoreg_core.staging import OUTPUT_OPTION_HELP
from fnoreg_core.validate import run_cli

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fnoreg-data", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("templates", help="build MNI152 / Colin27 / fsaverage on one grid (needs the source packages)")
    t.add_argument("--out", type=Path, default=None, help="output folder. Default: $FNOREG_DATA/templates or ~/.cache/fnoreg/templates")
    t.add_argument("--force", action="store_true", help="rebuild even if an up-to-date set exists")
    d = sub.add_parser("demo", help="write the demo pairs (Colin27 -> fsaverage) from a built template set")
    d.add_argument("--templates", type=Path, default=None, help="template set folder. Default: as for `templates`")
    d.add_argument("--out", type=Path, default=Path("assets/demo"), help="output folder. Default: assets/demo")
    d.add_argument("--overwrite", action="store_true", help=OUTPUT_OPTION_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from fnoreg_core.data import DataSpecError
    from fnoreg_core.data.templates import MissingSourceError, build_templates

    def body() -> int:
        if args.command == "templates":
            build_templates(args.out, force=args.force)
        else:
            from fnoreg_core.data.demo_assets import write_demo_assets

            write_demo_assets(args.templates, args.out, overwrite=args.overwrite)
        return 0

    return run_cli("fnoreg-data", body, (MissingSourceError, DataSpecError))


if __name__ == "__main__":
    sys.exit(main())
