"""Both people found per camera on the Pose2Sim two-person take, detector alone vs with the
cross-view pass (the criterion of ``tests/test_detect_real.py``).

    .venv/bin/python tools/two_person_recall.py

Prints one line per variant: the fraction of frames where both participants are found, per
camera, and how many detections the cross-view pass recovered or corrected.
"""

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_detect_real as T  # noqa: E402  (the test's own criterion and paths)

from mocap.detect import detect_session  # noqa: E402


def main() -> None:
    warnings.simplefilter("ignore", RuntimeWarning)
    for name, calibration in [("detector only", None), ("with the cross-view pass", T.CALIBRATION)]:
        t0 = time.perf_counter()
        kp = detect_session(T.MULTI, calibration=calibration)
        seconds = time.perf_counter() - t0
        rates = ", ".join(f"{cam} {T._two_people_found(kp, T.MULTI, cam).mean():.0%}" for cam in T.CAMERAS)
        recovered = [int(d.recovered.sum()) if d.recovered is not None else 0 for d in kp.extras["detections"]]
        print(f"{name}: both found {rates}; cross-view recovered/corrected {recovered}; {seconds:.1f} s")


if __name__ == "__main__":
    main()
