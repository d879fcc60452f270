"""Growth-rate forecast: a least-squares slope over a short window, and time to exhaustion."""

from __future__ import annotations

from collections import deque


class GrowthForecast:
    """Fits memory growth (MiB/s) over the last `window_s` seconds of readings."""

    def __init__(self, window_s: float, min_points: int = 3, min_span_s: float = 1.0) -> None:
        self._window_s = window_s
        self._min_points = min_points
        self._min_span_s = min_span_s
        self._points: deque[tuple[float, float]] = deque()

    def add(self, t: float, used_mib: float) -> None:
        points = self._points
        points.append((t, used_mib))
        while points and points[0][0] < t - self._window_s:
            points.popleft()

    def slope_mib_s(self) -> float | None:
        points = self._points
        n = len(points)
        if n < self._min_points or points[-1][0] - points[0][0] < self._min_span_s:
            return None
        # One pass, times taken from the first point's (large epoch values lose precision).
        t0 = points[0][0]
        st = su = stt = stu = 0.0
        for t, u in points:
            x = t - t0
            st += x
            su += u
            stt += x * x
            stu += x * u
        var = stt - st * st / n
        if var <= 1e-12:
            return None
        return (stu - st * su / n) / var

    def sustained_slope_mib_s(self, slope: float | None = None) -> float | None:
        """The fitted slope when growth is sustained, else None: each of the last two steps
        must rise by at least a quarter of what the fit predicts for it, so a single step
        followed by a flat run is not a ramp."""
        slope = self.slope_mib_s() if slope is None else slope
        points = self._points
        if slope is None or slope <= 0 or len(points) < 3:
            return None
        (t0, u0), (t1, u1), (t2, u2) = points[-3], points[-2], points[-1]
        if u1 - u0 < 0.25 * slope * (t1 - t0) or u2 - u1 < 0.25 * slope * (t2 - t1):
            return None
        return slope


def time_to_exhaustion_s(free_mib: float, slope_mib_s: float | None) -> float | None:
    """Seconds until `free_mib` is used up at the fitted rate; None when not growing."""
    if slope_mib_s is None or slope_mib_s <= 0:
        return None
    return max(0.0, free_mib) / slope_mib_s
