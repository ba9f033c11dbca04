"""Taking a trained model out of charrnn: the one-step model as ONNX (onnx.py), for any runtime."""
