"""One reader module per benchmark (torchreid's split); ``chatreid.data.read`` dispatches here."""
