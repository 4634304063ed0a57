"""How the pipeline runs rather than what it computes: chunks of frames for long takes
(:mod:`.chunked`, :mod:`.smooth_chunks`), where tasks run (:mod:`.executor`: local or Ray), and
which stage outputs can be reused (:mod:`.stages`: fingerprints of inputs and settings)."""
