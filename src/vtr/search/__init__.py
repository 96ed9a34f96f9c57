"""Search your own videos: ``index`` embeds a folder of clips with a checkpoint's video tower
(``index.py``, stored by ``store.py``); ``search`` ranks them for text queries (``query.py``) and
can write a page of thumbnails (``html.py``)."""
