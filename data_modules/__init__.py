"""Data for video-text retrieval, one step of the pipeline a module:

readers/        one reader per dataset: its official on-disk layout -> ``VideoRecord`` s (``READERS``)
dataset.py      ``VideoTextDataset``: a record -> sampled frames and a caption; ``Collator`` batches them
video.py        decoding frames (PyAV seeks; corrupt media reported) and the train / eval transforms
datamodule.py   ``RetrievalDataModule``: the config's named datasets, one loader each
resumable.py    samplers and loaders whose order survives a resume from a checkpoint
config.py       ``DataConfig``, the ``data`` section of the run configuration
demo/           the synthetic demo corpus, written in the readers' layouts
"""
