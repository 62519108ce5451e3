"""
keeptrusts: a governance gateway between developer tools and LLM providers.
"""

__version__ = "0.1.0"
