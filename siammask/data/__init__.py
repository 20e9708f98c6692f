"""Training data: converters that read public dataset layouts into one common record
(`formats/`), and the builder that pre-crops every annotated object into a training set
(`build.py`, run by `siammask dataset build`)."""
