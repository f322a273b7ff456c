"""Storage: result files on disk (versioned parquet), written while a run goes and read back."""
