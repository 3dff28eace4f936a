"""Homographic alignment of a background shot to a frame, for hand-held footage.

Features (ORB by default; SIFT, or AKAZE where the OpenCV build has it) are matched between background and frame with Lowe's
ratio test, a homography is fitted with RANSAC, and the background is warped onto the frame. Where
the warped background does not reach (outside the shot), the frame's own pixels are used, as upstream
does. Too few matches or a degenerate fit keeps the background as it is (with one warning). The
background's features are computed once per background picture.
"""
from typing import Optional, Tuple

import numpy as np

from .errors import MediaError, warn


class Aligner:
    def __init__(self, method: str = "orb", features: int = 2000, ratio: float = 0.75, min_inliers: int = 12,
                 ransac_threshold: float = 3.0):
        import cv2
        self.cv2 = cv2
        factory = {"orb": lambda: cv2.ORB_create(nfeatures=features),
                   "sift": lambda: cv2.SIFT_create(nfeatures=features),
                   "akaze": lambda: cv2.AKAZE_create()}
        if method not in factory:
            raise MediaError(f"alignment method {method!r}: use orb, sift or akaze")
        try:
            self.detector = factory[method]()
        except AttributeError:
            raise MediaError(f"this OpenCV build ({cv2.__version__}) has no {method.upper()} detector; "
                             "use --align-method orb or sift") from None
        self.matcher = cv2.BFMatcher(cv2.NORM_L2 if method == "sift" else cv2.NORM_HAMMING)
        self.ratio, self.min_inliers, self.ransac_threshold = ratio, min_inliers, ransac_threshold
        self._cache_key = None
        self._cache: Tuple = (None, None)
        self.failures = 0
        self.last_homography: Optional[np.ndarray] = None

    def features(self, image: np.ndarray):
        grey = self.cv2.cvtColor(image, self.cv2.COLOR_RGB2GRAY)
        return self.detector.detectAndCompute(grey, None)

    def background_features(self, bgr: np.ndarray):
        key = (id(bgr), bgr.shape, bgr.__array_interface__["data"][0])
        if key != self._cache_key:
            self._cache_key, self._cache = key, self.features(bgr)
        return self._cache

    def homography(self, src: np.ndarray, bgr: np.ndarray) -> Optional[np.ndarray]:
        """The 3x3 map from background to frame coordinates, or None when it cannot be trusted."""
        cv2 = self.cv2
        kp_bgr, des_bgr = self.background_features(bgr)
        kp_src, des_src = self.features(src)
        if des_bgr is None or des_src is None or len(kp_bgr) < self.min_inliers or len(kp_src) < self.min_inliers:
            return None
        pairs = self.matcher.knnMatch(des_bgr, des_src, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        if len(good) < self.min_inliers:
            return None
        points_bgr = np.float32([kp_bgr[m.queryIdx].pt for m in good])
        points_src = np.float32([kp_src[m.trainIdx].pt for m in good])
        H, inliers = cv2.findHomography(points_bgr, points_src, cv2.RANSAC, self.ransac_threshold)
        if H is None or inliers is None or int(inliers.sum()) < self.min_inliers:
            return None
        if not np.isfinite(H).all() or abs(np.linalg.det(H[:2, :2])) < 1e-3:
            return None
        return H

    def __call__(self, src: np.ndarray, bgr: np.ndarray) -> np.ndarray:
        """`bgr` warped onto `src` (both (H, W, 3) uint8 RGB of the same size)."""
        cv2 = self.cv2
        H = self.homography(src, bgr)
        self.last_homography = H
        if H is None:
            self.failures += 1
            if self.failures == 1:
                warn("background alignment found too few matching features in a frame; that frame uses the "
                     "background unaligned (reported once)")
            return bgr
        height, width = src.shape[:2]
        warped = cv2.warpPerspective(bgr, H, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        covered = cv2.warpPerspective(np.full((height, width), 255, np.uint8), H, (width, height),
                                      flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        outside = covered < 255
        if outside.any():
            warped[outside] = src[outside]
        return warped
