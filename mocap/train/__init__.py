"""Training the learned stages (``mocap train``): data from the synthetic studio, seeded loops.

:mod:`.data` builds per view × joint evidence from synthetic captures (real CMU motion, the
detector error model, random rigs); :mod:`.algebraic` trains the learned algebraic triangulation
with the settings of :mod:`.config`. torch is needed by :mod:`.algebraic` only.
"""
