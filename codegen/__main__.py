"""python3 -m codegen {regen|check|list}"""
import sys

from . import naming, render, spec


def main(argv):
    cmd = argv[0] if argv else "regen"
    if cmd == "regen":
        written, removed, total = render.regen()
        print(f"codegen: {total} files, {written} written, {removed} orphans removed")
        return 0
    if cmd == "check":
        stale, orphans = render.check()
        for r in stale:
            print(f"stale:  generated/{r}")
        for r in orphans:
            print(f"orphan: generated/{r}")
        if stale or orphans:
            print("codegen check: generated/ does not match; run python3 -m codegen regen")
            return 1
        print("codegen check: generated/ matches the generator")
        return 0
    if cmd == "list":
        for isa in spec.ISAS:
            for op in spec.OPS:
                for dt in (d for d in spec.DTYPES if op.applies(d, isa)):
                    print(naming.symbol(op.name, isa.name, dt.name))
            for op in spec.ISA_OPS:
                print(naming.symbol(op.name, isa.name))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
