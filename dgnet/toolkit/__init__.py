"""Using a trained model outside the pipeline, as re-id toolkits do.

    dgnet export --checkpoint models/dgnet/last.pt --format onnx --out dgnet.onnx
    dgnet embed --checkpoint models/dgnet/last.pt photos/ --out gallery.npz
    dgnet search --features gallery.npz query.jpg --top 10 --figure ranks.png

:mod:`dgnet.toolkit.export` writes the test-time network (images in, the
evaluation's features out) as ONNX or TorchScript; :mod:`dgnet.toolkit.folder`
embeds a plain folder of images into a feature file and searches it.
"""
