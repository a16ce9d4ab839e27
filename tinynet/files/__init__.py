"""Files, read and written safely: every size checked before the bytes behind it,
only regular files opened, every write atomic. Machinery: skip it on a first read.

| module         | what it holds                                                              |
|----------------|----------------------------------------------------------------------------|
| ``fileio``     | opening only regular files; atomic writes that keep the replaced file's mode |
| ``archives``   | zip entries and ``.npy`` headers read with every size checked first        |
| ``keras_format`` | Keras 3's ``.keras`` and ``.weights.h5`` files, read and written          |

tinynet's own ``.npz`` model and checkpoint format is :mod:`tinynet.saving`.
"""
