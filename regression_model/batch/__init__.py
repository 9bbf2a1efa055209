"""Files and clusters: CSV and Parquet files of any size scored in bounded
memory (``run``), the same on a Dask cluster (``dask_scoring``), and large
test inputs made by resampling the bundled houses (``resample``)."""
