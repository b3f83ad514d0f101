"""Export tickets to ONNX with an embedded model card. (Import torch-using parts from their modules.)"""
