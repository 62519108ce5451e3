"""
The forward proxy: CONNECT tunnels, TLS interception, plain HTTP forwarding.
"""
