from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.text import slugify

from providers.models import ApiToken, Membership, Provider, TokenRefused


class Command(BaseCommand):
    help = "Create a provider, optionally with a member and an API token (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--member", metavar="EMAIL", help="add this user (created if missing) as a member")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.ADMIN)
        parser.add_argument("--token", action="store_true", help="issue an API token for the member")
        parser.add_argument("--website", default="")

    def handle(self, *args, name, member, role, token, website, **options):
        name = name.strip()
        slug = slugify(name)
        if not name or not slug:
            raise CommandError("A provider needs a name with at least one letter or digit.")
        if token and not member:
            raise CommandError("--token needs --member: a token acts for a person.")
        if member:
            try:
                validate_email(member)
            except ValidationError:
                raise CommandError(f"{member!r} is not an email address.") from None
        if Provider.objects.filter(name__iexact=name).exists() or Provider.objects.filter(slug=slug).exists():
            raise CommandError(f"A provider named {name!r} already exists.")

        with transaction.atomic():
            provider = Provider.objects.create(name=name, slug=slug, website=website)
            self.stdout.write(f"Provider {provider.name} ({provider.slug}) created.")
            if member:
                user = self._member(member)
                Membership.objects.create(provider=provider, user=user, role=role)
                self.stdout.write(f"{user.email} is now {role} of {provider.name}.")
                if token:
                    try:
                        _, raw = ApiToken.objects.issue(user=user, name=f"{provider.slug} (create_provider)")
                    except TokenRefused as exc:  # staff, with the second factor required
                        raise CommandError(f"{exc} Or leave out --token and issue it in the admin.") from None
                    self.stdout.write(f"API token (shown once): {raw}")

    def _member(self, email: str):
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(username=email.lower(), email=email.lower())
            user.set_unusable_password()
            user.save()
            self.stdout.write(f"User {user.email} created; they set a password with 'Forgot password' at login.")
        return user
