// web client (being written)
