"""Data for video-text retrieval, one step of the pipeline a module:

``readers/``     one reader per dataset: its official on-disk layout -> ``VideoRecord`` s (``READERS``)
``video.py``     decoding frames (PyAV seeks, corrupt media reported) and the train/eval transforms
``dataset.py``   ``VideoTextDataset``: records -> sampled frames + a caption; ``Collator`` batches them
``resumable.py`` samplers and loaders whose order survives a checkpoint-resume
``datamodule.py`` ``RetrievalDataModule``: the config's named datasets, one loader each
``config.py``    ``DataConfig``, the ``data`` section of the run configuration
``demo/``        the synthetic demo corpus, written in every reader's layout
"""
