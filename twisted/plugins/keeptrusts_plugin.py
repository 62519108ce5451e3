"""
C{twistd keeptrusts}.
"""

from twisted.application.service import ServiceMaker

keeptrusts = ServiceMaker(
    "keeptrusts",
    "keeptrusts.tap",
    "A governance gateway for the LLM traffic of developer tools.",
    "keeptrusts")
