"""``python -m seqapps serve``: exports over HTTP, speaking TensorFlow Serving's REST API.

- :mod:`.models` finds the exports in a folder, loads each with ``tf.saved_model.load``
  alone (as TF Serving does) and swaps in a replaced export without dropping requests;
- :mod:`.rest` turns TF Serving's JSON (row and columnar formats, ``{"b64": ...}``) into
  arrays checked against a signature, and outputs back into JSON;
- :mod:`.batching` gathers concurrent requests for one signature into one call;
- :mod:`.app` holds the routes, and ``pages/`` the HTML and JavaScript of the model pages.

(:mod:`seqapps.inference` is something else: the endpoints that go *into* an export.)
"""
