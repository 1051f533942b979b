"""The Gradio UI of the dadq app, beside ``app.py`` (never inside ``dadq/``; the core never imports
gradio). One concept per module:

  state     what the app holds between events (module-global STATE: model, profile, allocation)
  views     what the widgets show for the current state: texts, tables, figures, control values
  handlers  one function per event: validate the UI's inputs, call dadq, return the views
  layout    the tabs and their widgets, one builder per tab
  texts     static texts and the page's CSS / JS
"""
