//! Linear models (placeholder while k-means builds).
