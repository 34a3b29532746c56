import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('providers', '0004_fairness_rules'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ExpectedShareSnapshot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('taken_at', models.DateTimeField(help_text='The hour, truncated.', unique=True)),
                ('day', models.DateField(db_index=True)),
            ],
            options={
                'ordering': ['-taken_at'],
            },
        ),
        migrations.CreateModel(
            name='PolicyChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('effective_at', models.DateTimeField(default=django.utils.timezone.now, help_text='When the change took effect.')),
                ('title', models.CharField(max_length=200)),
                ('setting', models.CharField(blank=True, help_text='The setting changed, e.g. ARENA_INITIAL_RATING_CAP; empty for text.', max_length=64)),
                ('old_value', models.CharField(blank=True, max_length=200)),
                ('new_value', models.CharField(blank=True, max_length=200)),
                ('description', models.TextField(blank=True, help_text='Why, in a few sentences. Public.', max_length=5000)),
                ('recorded_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('recorded_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-effective_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='ExpectedShare',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('share', models.FloatField()),
                ('arena_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='providers.arenamodel')),
                ('snapshot', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='shares', to='transparency.expectedsharesnapshot')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('snapshot', 'arena_model'), name='expectedshare_one_per_model')],
            },
        ),
    ]
