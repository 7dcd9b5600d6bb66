// Least-squares line through measured points: the per-connection cost is the
// slope of memory against connections, and R² says how well a line explains
// the points (a baseline taken too early, or noise from other processes,
// shows up as a poor fit instead of a misleading single quotient).

export interface LineFit {
  /** Units of y per unit of x. */
  slope: number;
  intercept: number;
  /** Coefficient of determination, 1 = every point on the line; null with fewer than 3 points or no spread in y. */
  r2: number | null;
  points: number;
}

export function fitLine(xs: readonly number[], ys: readonly number[]): LineFit {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return { slope: NaN, intercept: NaN, r2: null, points: n };
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += xs[i]!;
    my += ys[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const slope = sxx === 0 ? NaN : sxy / sxx;
  return {
    slope, intercept: my - slope * mx,
    // Two points always lie on a line: R² means something from three on.
    r2: n < 3 || syy === 0 || sxx === 0 ? null : (sxy * sxy) / (sxx * syy),
    points: n,
  };
}
