"""The machinery: what makes the textbook fast, safe and Keras-like. Skip it on a first read.

The textbook (``tinynet/layers/``, ``losses.py``, ``optimizers.py``, ``sequential.py``)
writes the math; it reaches this package through one door, :mod:`tinynet.engine.loop`
(and inherits Keras's model methods from :mod:`tinynet.engine.keras_api`, the optimizer's
state handling from :mod:`tinynet.engine.optimizer_state`).

| module            | what it holds                                                          |
|-------------------|------------------------------------------------------------------------|
| ``loop``          | the one door: ``Loop`` (epochs, batches, callbacks, a CUDA graph's replay), ``prepared`` |
| ``data``          | what ``fit`` is given: validated, on the device, the validation split  |
| ``flat``          | the flat parameter buffer, and the layer contract it checks            |
| ``guards``        | the NaN watch's error and last finite state, Ctrl-C                    |
| ``progress``      | the progress bar                                                       |
| ``twins``         | the table of fast twins and the one place that binds them              |
| ``twins_inplace`` | twins that work in place (CPU and GPU), on ranges of samples at once   |
| ``twins_fused``   | twins that are one CUDA kernel each (GPU)                              |
| ``kernels``       | the CUDA sources and their launches                                    |
| ``graphs``        | a Dense model's whole epoch captured as one CUDA graph                 |
| ``threads``       | how many threads BLAS and the twins use                                |
| ``keras_rules``   | every rule tinynet follows only because Keras does                     |
| ``keras_api``     | Keras's API around the model: evaluate, predict, weights, state, save  |
| ``optimizer_state`` | an optimizer's state: moved, laid out, saved and restored            |
| ``summary``       | ``model.summary()``'s table                                            |
| ``moved``         | the old names of modules that moved here                               |
"""
