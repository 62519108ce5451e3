"""
Run twistd under cProfile:  python bench/profiled.py OUT.prof <twistd args>

The stats are written to OUT.prof when twistd returns (SIGTERM stops the
reactor; bench/run.py sends it).
"""

import cProfile
import sys


def main():
    out = sys.argv[1]
    sys.argv = ["twistd"] + sys.argv[2:]
    from twisted.application import app
    from twisted.scripts.twistd import run
    # twistd re-raises the stopping signal at the very end, which would
    # kill the process before the stats are written.
    app._exitWithSignal = lambda sig: None
    profile = cProfile.Profile()
    profile.enable()
    try:
        run()
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
