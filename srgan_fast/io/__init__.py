"""Files: images in and out (``images``, ``metadata``, ``heif``), atomic writes (``atomic``), stop signals
(``signals``) and folder batches (``batch``)."""
