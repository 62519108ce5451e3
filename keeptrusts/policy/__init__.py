"""
The policy chain and its built-in policies.
"""
