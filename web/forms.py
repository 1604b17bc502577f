"""Forms of the dashboard whose inputs need bounds Django's defaults do not give."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator

USERNAME_MAX_LENGTH = 150  # Django's User.username


class LoginForm(AuthenticationForm):
    """Django's login form, with the username bounded *before* authentication: Django sets
    the field's ``max_length`` after the field is built, so no validator enforces it, and a
    300-character username reached django-axes' 255-character column (a 500)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.max_length = USERNAME_MAX_LENGTH
        username.validators = [
            *username.validators,
            MaxLengthValidator(USERNAME_MAX_LENGTH),
            ProhibitNullCharactersValidator(),
        ]
        username.widget.attrs["maxlength"] = USERNAME_MAX_LENGTH

    def clean(self):
        if self.errors:  # a bad username never reaches authenticate()
            raise forms.ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )
        return super().clean()
