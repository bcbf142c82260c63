"""The call transports: Twilio Media Streams and the browser WebSocket."""
