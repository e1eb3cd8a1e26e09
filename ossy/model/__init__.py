"""The gpt-oss model: configuration, math, MXFP4, KV cache and weight loading.

Math only: this package imports nothing else from ossy and never sees text.
"""
