

def test_the_python_api_is_named_as_a_user_calls_it(monkeypatch):
    import sys

    import phitune
    from phitune import model_card

    monkeypatch.setitem(model_card._command, "argv", None)
    monkeypatch.setattr(sys, "argv", ["notebook.py"])
    command = model_card.run_command()
    assert command.startswith("phitune.train(") and callable(phitune.train)
