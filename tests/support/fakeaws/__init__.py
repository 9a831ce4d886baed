"""fakeaws: a local AWS-compatible endpoint for lumu's tests.

Standard library plus botocore (its service models and SigV4 signer) only.
It binds 127.0.0.1 and never opens a connection to any other address.
Start it with ``python3 -m tests.support.fakeaws --port 0`` (see server.py
for the options and the /__fake/ control endpoints).
"""
