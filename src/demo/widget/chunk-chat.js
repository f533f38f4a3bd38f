/* mock chunk */ window.parent.zEmbedChunk = "chat";
