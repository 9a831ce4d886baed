"""python3 -m tests.support.fakeaws [options]   or   python3 tests/support/fakeaws [options]"""
import os
import sys

if __package__ in (None, ""):
    # Run as a script path: make the package importable as "fakeaws" and keep
    # this directory's module names (s3, ssm, ...) off the front of sys.path.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(here))
    from fakeaws.server import main
else:
    from .server import main

sys.exit(main())
