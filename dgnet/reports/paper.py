"""Numbers quoted from the paper (CVPR 2019). Never measured here; reports mark them as quoted."""

import pandas as pd

TABLE3 = pd.DataFrame(
    [
        ("Baseline (teacher)", 89.6, 74.5, 82.0, 65.3, 68.8, 36.2),
        ("f_prim", 94.0, 84.4, 85.6, 72.7, 76.0, 49.7),
        ("f_fine", 91.6, 75.3, 78.7, 61.2, 71.5, 43.5),
        ("f_prim + f_fine", 94.8, 86.0, 86.6, 74.8, 77.2, 52.3),
    ],
    columns=["Method", "Market R1", "Market mAP", "Duke R1", "Duke mAP", "MSMT R1", "MSMT mAP"],
)

_NA = None
TABLE4 = pd.DataFrame(
    [
        ("Verif-Identif", 1, 79.5, 59.9, 68.9, 49.3), ("DCF", 1, 80.3, 57.5, _NA, _NA),
        ("SSM", 1, 82.2, 68.8, _NA, _NA), ("SVDNet", 1, 82.3, 62.1, 76.7, 56.8),
        ("PAN", 1, 82.8, 63.4, 71.6, 51.5), ("GLAD", 1, 89.9, 73.9, _NA, _NA),
        ("HA-CNN", 1, 91.2, 75.7, 80.5, 63.8), ("MLFN", 1, 90.0, 74.3, 81.0, 62.8),
        ("Part-aligned", 1, 91.7, 79.6, 84.4, 69.3), ("PCB", 1, 93.8, 81.6, 83.3, 69.2),
        ("Mancs", 1, 93.1, 82.3, 84.9, 71.8), ("DeformGAN", 2, 80.6, 61.3, _NA, _NA),
        ("LSRO", 2, 84.0, 66.1, 67.7, 47.1), ("Multi-pseudo", 2, 85.8, 67.5, 76.8, 58.6),
        ("PT", 2, 87.7, 68.9, 78.5, 56.9), ("PN-GAN", 2, 89.4, 72.6, 73.6, 53.2),
        ("FD-GAN", 2, 90.5, 77.7, 80.0, 64.5), ("DG-Net (paper)", 3, 94.8, 86.0, 86.6, 74.8),
    ],
    columns=["Method", "Group", "Market R1", "Market mAP", "Duke R1", "Duke mAP"],
)

TABLE5 = pd.DataFrame(
    [
        ("Deep", 47.6, 65.0, 71.8, 23.0), ("PDC", 58.0, 73.6, 79.4, 29.7),
        ("Verif-Identif", 60.5, 76.2, 81.6, 31.6), ("GLAD", 61.4, 76.8, 81.6, 34.0),
        ("PCB", 68.2, 81.2, 85.5, 40.4), ("DG-Net (paper)", 77.2, 87.4, 90.5, 52.3),
    ],
    columns=["Method", "Rank@1", "Rank@5", "Rank@10", "mAP"],
)

TABLE9 = pd.DataFrame(
    [
        ("Market -> Duke", 42.62, 58.57, 64.63, 24.25), ("Duke -> Market", 56.12, 72.18, 78.12, 26.83),
        ("Market -> MSMT", 17.11, 26.66, 31.62, 5.41), ("MSMT -> Market", 61.76, 77.67, 83.25, 33.62),
        ("Duke -> MSMT", 20.59, 31.67, 37.04, 6.35), ("MSMT -> Duke", 61.89, 75.81, 80.34, 40.69),
    ],
    columns=["Transfer", "Rank@1", "Rank@5", "Rank@10", "mAP"],
)

TABLE10 = pd.DataFrame(
    [
        ("HA-CNN", 41.7, 38.6), ("PT", 41.6, 38.7), ("MLFN", 52.8, 47.8), ("PCB", 61.3, 54.2),
        ("PCB + RPP", 63.7, 57.5), ("DG-Net (paper)", 65.6, 61.1),
    ],
    columns=["Method", "Rank@1", "mAP"],
)

# Offline generation then separate training vs end-to-end (Section 4.2, Market-1501 mAP)
OFFLINE_VS_E2E = pd.DataFrame(
    [("Offline-generated, trained separately", 84.4), ("End-to-end DG-Net", 86.0)],
    columns=["Method", "Market mAP"],
)
