"""
The C{/v1} reverse proxy: resources, provider adapters, streaming.
"""
