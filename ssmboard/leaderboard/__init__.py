"""The leaderboard: pure table and plot builders over the store's rows, and the Gradio app.

``data`` reads the store into pandas frames (the only module here that touches the store,
besides the app's register-and-submit form); ``tables`` and ``plots`` are pure functions of
those frames, so the app, ``ssmboard leaderboard`` and the tests share one ranking.
"""
