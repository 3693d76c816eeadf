"""The leaderboard: pure table and plot builders over the store's rows, and the Gradio app."""
