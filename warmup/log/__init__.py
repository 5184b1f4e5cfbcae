"""The event log behind one interface (``base``): ``file`` is its first backend.

``open_log_backend(spec)`` turns a ``--log`` value into a ``Log``.
"""
