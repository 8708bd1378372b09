print("droplab")
