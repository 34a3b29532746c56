import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from releases import sharing

from ._provider import provider_named


class Command(BaseCommand):
    help = (
        "Record that a provider member accepted the current data-sharing terms (for example on paper), "
        "and with --approve or --revoke, staff's decision on it."
    )

    def add_arguments(self, parser):
        parser.add_argument("provider", help="the provider's slug (or name)")
        parser.add_argument("--accepted-by", required=True, metavar="EMAIL", help="a member of the provider")
        decision = parser.add_mutually_exclusive_group()
        decision.add_argument("--approve", action="store_true", help="approve the agreement as well")
        decision.add_argument("--revoke", action="store_true", help="revoke the provider's agreement")
        parser.add_argument("--reason", default="", help="kept on the agreement and shown to the provider")
        parser.add_argument("--by", metavar="EMAIL", help="the staff member deciding (recorded as the decider)")

    def handle(self, *args, provider, accepted_by, approve, revoke, reason, by, **options):
        provider = provider_named(provider)
        member = self._user(accepted_by)
        if not provider.memberships.filter(user=member).exists():
            raise CommandError(f"{accepted_by} is not a member of {provider.name}; add them in admin first.")
        decider = self._user(by) if by else None
        if decider is not None and not decider.is_staff:
            raise CommandError(f"--by: {by} is not staff.")

        agreement, created = sharing.agreement_accept(provider=provider, user=member)
        verb = "recorded" if created else "already recorded"
        self.stdout.write(
            f"Agreement {agreement.pk}: {provider.name} accepted the terms {agreement.terms_version} "
            f"({verb}, by {agreement.accepted_by.get_username()}); it is {agreement.state}."
        )
        if approve or revoke:
            if decider is None:
                # No account decided: say in the record who ran the command.
                shell = f"from the shell by {getpass.getuser()}"
                reason = f"{reason} ({shell})" if reason else shell.capitalize()
            try:
                agreement, changed = sharing.agreement_decide(
                    agreement_id=agreement.pk, approve=approve, by=decider, reason=reason
                )
            except sharing.SharingRefused as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"Agreement {agreement.pk} is {agreement.state}{'' if changed else ' (unchanged)'}.")

    def _user(self, email: str):
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first() or User.objects.filter(username__iexact=email).first()
        if user is None:
            raise CommandError(f"There is no user {email!r}.")
        return user
