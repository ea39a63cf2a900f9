"""From an image to the backend's tiles and back: channels and dtypes (``channels``), seam-free tiles
(``plan``), the output size (``output_size``), the self-ensemble (``ensemble``) and frame streams (``streaming``)."""
