"""
C{kt}, the command line of keeptrusts: one module per command group,
plugged into L{keeptrusts.cli.main}.
"""
