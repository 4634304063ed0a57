"""Recording a take from several cameras, and the timeline that puts their frames together.

``sources`` (devices, URLs, files played live, synthetic cameras), ``capture`` (one grab and one
encoder thread per camera), ``session`` (``record_session``: the session folder), ``report`` (the
sync report and matched frame table), ``sync`` (offsets of footage recorded without sync, from the
performers' motion), ``resample`` (``sync.yaml``; keypoints onto the reference timeline),
``options`` (the ``record`` and ``sync`` config sections).
"""
