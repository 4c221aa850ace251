"""Input pipelines and data-set loaders: where the data comes from and how it is batched."""
